"""Save and load convexnn objects as ``.npz`` files with JSON metadata (no pickle inside).

:func:`save` writes one ``.npz`` archive: the numeric arrays under their names plus an entry
``__convexnn__`` holding UTF-8 JSON metadata (object type, format version, scalars, strings).
:func:`load` reads it back with ``numpy.load(..., allow_pickle=False)``, so loading a file
cannot execute code. Supported objects:

* :class:`~convexnn.TwoLayerReLU`, :class:`~convexnn.GatedReLU` -- weights (and gates);
* :class:`~convexnn.Patterns` -- bit-packed masks, witness gates, ``bias``, ``exact``, ``kind``,
  ``fingerprint``;
* :class:`~convexnn.ConvexSolution` of ``c_relu`` / ``c_grelu`` / ``min_norm`` programs -- the
  weights, value, status, solver statistics, the array / scalar parts of ``info``, and the
  data, patterns and settings of its formulation, which :func:`load` builds again (a fresh
  CVXPY problem, ready to re-solve);
* :class:`~convexnn.Certificate` -- every field, the certified network and the data it was
  certified on (``improve()`` works after loading).

All these objects also pickle (a formulation pickles without its CVXPY problem).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from convexnn.arrangements.patterns import Patterns
from convexnn.errors import InputError
from convexnn.formulations.formulation import ConvexSolution
from convexnn.formulations.losses import LOSSES, Loss, get_loss
from convexnn.formulations.penalties import PENALTIES, get_penalty
from convexnn.networks.two_layer import GatedReLU, TwoLayerReLU

__all__ = ["save", "load", "FORMAT_VERSION"]

#: Version of the file layout written by :func:`save`.
FORMAT_VERSION = 1
_META = "__convexnn__"


def _jsonable(value: Any) -> tuple[bool, Any]:
    """``(ok, value)`` with numpy scalars converted; ``ok`` is False for what JSON cannot hold."""
    if value is None or isinstance(value, (bool, str)):
        return True, value
    if isinstance(value, (int, np.integer)) and not isinstance(value, np.bool_):
        return True, int(value)
    if isinstance(value, np.bool_):
        return True, bool(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return True, v if np.isfinite(v) else {"__float__": repr(v)}
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            ok, j = _jsonable(v)
            if not ok:
                return False, None
            out.append(j)
        return True, out
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        out_d = {}
        for k, v in value.items():
            ok, j = _jsonable(v)
            if not ok:
                return False, None
            out_d[k] = j
        return True, out_d
    return False, None


def _unjson(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__float__"}:
            return float(value["__float__"])
        return {k: _unjson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unjson(v) for v in value]
    return value


def _numeric_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) and value.dtype != object and (
        np.issubdtype(value.dtype, np.number) or value.dtype == np.bool_)


def _loss_name(loss: Any) -> str:
    name = getattr(loss, "name", loss)
    if name not in LOSSES:
        raise InputError(f"cannot save a custom loss {loss!r}; only the built-in losses {sorted(LOSSES)} are saved.")
    return str(name)


def _penalty_meta(penalty: Any) -> dict[str, Any]:
    """The first-layer penalty as JSON (built-in penalties only: a custom one cannot be rebuilt)."""
    pen = get_penalty(penalty)
    if PENALTIES.get(pen.name) is None or type(PENALTIES[pen.name]) is not type(pen):
        raise InputError(f"cannot save a custom penalty {pen!r}; only the built-in penalties {sorted(PENALTIES)} "
                         "are saved.")
    return {"name": pen.name, "l1_ratio": getattr(pen, "l1_ratio", None)}


def _penalty_of(meta: dict[str, Any]) -> Any:
    pm = meta.get("penalty")
    return None if pm is None else get_penalty(pm["name"], pm.get("l1_ratio"))


# ============================================================================ encoders
def _encode_patterns(p: Patterns, prefix: str = "") -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays = {prefix + "packed": np.asarray(p.packed), prefix + "gates": np.asarray(p.gates)}
    meta = {"n": p.n_samples, "bias": p.bias, "exact": p.exact, "kind": p.kind, "fingerprint": p.fingerprint}
    return arrays, meta


def _decode_patterns(arrays: Any, meta: dict[str, Any], prefix: str = "") -> Patterns:
    return Patterns.from_packed(arrays[prefix + "packed"], int(meta["n"]), arrays[prefix + "gates"],
                                bias=bool(meta["bias"]), exact=bool(meta["exact"]), kind=str(meta["kind"]),
                                fingerprint=meta["fingerprint"])


def _encode_solution(sol: ConvexSolution) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    f = sol.formulation
    kind = getattr(f, "kind", None)
    if kind not in ("c_relu", "c_grelu", "min_norm"):
        raise InputError(f"save() supports solutions of c_relu, c_grelu and min_norm programs; got {kind!r} "
                         "(pickle works for every solution).")
    arrays: dict[str, np.ndarray] = {f"weights/{k}": np.asarray(v, dtype=np.float64) for k, v in sol.weights.items()}
    arrays["X"] = np.asarray(f.X, dtype=np.float64)
    arrays["y"] = np.asarray(f.y, dtype=np.float64)
    pa, pm = _encode_patterns(f.patterns, "patterns/")
    arrays.update(pa)
    info: dict[str, Any] = {}
    dropped = []
    for k, v in sol.info.items():
        if _numeric_array(v):
            arrays[f"info/{k}"] = v
            continue
        ok, j = _jsonable(v)
        if ok:
            info[k] = j
        else:
            dropped.append(k)
    meta = {
        "formulation": {"kind": kind, "loss": _loss_name(f.loss), "bias": bool(f.bias),
                        "vector_reg": getattr(f, "vector_reg", "group"),
                        "classification": bool(f.meta.get("classification", False)),
                        "penalty": _penalty_meta(getattr(f, "penalty", None))},
        "patterns": pm,
        "fields": {"value": float(sol.value), "status": sol.status, "solver": sol.solver,
                   "solve_time": float(sol.solve_time), "compile_time": float(sol.compile_time),
                   "iterations": None if sol.iterations is None else int(sol.iterations), "lam": float(sol.lam)},
        "info": info,
        "dropped_info": dropped,
    }
    return arrays, _jsonable(meta)[1]


def _decode_solution(arrays: Any, meta: dict[str, Any]) -> ConvexSolution:
    from convexnn.formulations.two_layer import c_grelu, c_relu, min_norm_interpolation

    fm = meta["formulation"]
    pats = _decode_patterns(arrays, meta["patterns"], "patterns/")
    X, y = arrays["X"], arrays["y"]
    fields = _unjson(meta["fields"])
    lam = fields["lam"]
    if fm["kind"] == "min_norm":
        f = min_norm_interpolation(X, y, pats, classification=fm["classification"], bias=fm["bias"],
                                   vector_reg=fm["vector_reg"], penalty=_penalty_of(fm))
    else:
        build = c_relu if fm["kind"] == "c_relu" else c_grelu
        f = build(X, y, pats, lam if np.isfinite(lam) and lam > 0 else 1.0, loss=fm["loss"], bias=fm["bias"],
                  vector_reg=fm["vector_reg"], penalty=_penalty_of(fm))
    weights = {k.split("/", 1)[1]: np.array(arrays[k]) for k in arrays.files if k.startswith("weights/")}
    info = _unjson(meta["info"])
    for k in arrays.files:
        if k.startswith("info/"):
            info[k.split("/", 1)[1]] = np.array(arrays[k])
    return ConvexSolution(formulation=f, weights=weights, info=info, **fields)


def _encode_certificate(cert: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {}
    for fld in dataclasses.fields(cert):
        v = getattr(cert, fld.name)
        if fld.name == "network":
            arrays["network/W1"] = np.asarray(v.W1, dtype=np.float64)
            arrays["network/w2"] = np.asarray(v.w2, dtype=np.float64)
            meta["network"] = {"bias": bool(v.bias), "source": v.source}
        elif fld.name == "sdp" and v is not None:  # SDPLowerBound: its scalars and its dual point
            arrays["sdp/dual_point"] = np.asarray(v.dual_point, dtype=np.float64)
            meta["sdp"] = {f.name: getattr(v, f.name) for f in dataclasses.fields(v) if f.name != "dual_point"}
        elif isinstance(v, Loss):
            meta[fld.name] = {"__loss__": _loss_name(v)}
        elif _numeric_array(v):
            arrays[fld.name] = v
        else:
            ok, j = _jsonable(v)
            if not ok:
                raise InputError(f"cannot save Certificate field {fld.name!r} of type {type(v).__name__}.")
            meta[fld.name] = j
    return arrays, meta


def _decode_certificate(arrays: Any, meta: dict[str, Any]) -> Any:
    from convexnn.networks.reading import NetworkArrays
    from convexnn.duality.certify import Certificate

    kwargs: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(Certificate)}
    for k, v in meta.items():
        if k == "network" or k not in names:
            continue
        if k == "sdp" and isinstance(v, dict):
            from convexnn.duality.sdp import SDPLowerBound

            kwargs[k] = SDPLowerBound(dual_point=np.array(arrays["sdp/dual_point"]), **v)
            continue
        if isinstance(v, dict) and "__loss__" in v:
            kwargs[k] = get_loss(v["__loss__"])
        else:
            kwargs[k] = _unjson(v)
    for k in arrays.files:
        if k in names:
            kwargs[k] = np.array(arrays[k])
    nm = meta["network"]
    W1, w2 = np.array(arrays["network/W1"]), np.array(arrays["network/w2"])
    original = TwoLayerReLU(W1, w2, bias=nm["bias"]) if nm["source"] == "convexnn" else None
    kwargs["network"] = NetworkArrays(W1, w2, bool(nm["bias"]), nm["source"], original)
    return Certificate(**kwargs)


# ============================================================================ public API
def _target(path: str | Path) -> Path:
    p = Path(path)
    return p if p.suffix == ".npz" else p.with_name(p.name + ".npz")


def save(obj: Any, path: str | Path) -> Path:
    """Save a network, patterns, solution or certificate to ``path`` (``.npz`` is appended if missing).

    Parameters
    ----------
    obj : TwoLayerReLU, GatedReLU, Patterns, ConvexSolution or Certificate
    path : str or Path

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    InputError
        For an unsupported object (the message names the supported ones), a custom loss, or a
        solution of a program kind :func:`load` cannot rebuild.
    """
    from convexnn.duality.certify import Certificate

    arrays: dict[str, np.ndarray]
    if isinstance(obj, GatedReLU):
        arrays = {"gates": obj.gates, "W1": obj.W1, "w2": obj.w2}
        meta: dict[str, Any] = {"bias": obj.bias, "penalty": _penalty_meta(obj.penalty)}
    elif isinstance(obj, TwoLayerReLU):
        arrays, meta = {"W1": obj.W1, "w2": obj.w2}, {"bias": obj.bias, "penalty": _penalty_meta(obj.penalty)}
    elif isinstance(obj, Patterns):
        arrays, meta = _encode_patterns(obj)
    elif isinstance(obj, ConvexSolution):
        arrays, meta = _encode_solution(obj)
    elif isinstance(obj, Certificate):
        arrays, meta = _encode_certificate(obj)
    else:
        raise InputError(f"save() supports TwoLayerReLU, GatedReLU, Patterns, ConvexSolution and Certificate; "
                         f"got {type(obj).__name__}.")
    kind = type(obj).__name__
    if isinstance(obj, TwoLayerReLU):  # subclasses (e.g. a certificate's NetworkArrays) load as the network
        kind = "TwoLayerReLU"
    header = {"type": kind, "format_version": FORMAT_VERSION, "meta": meta}
    from convexnn import __version__

    header["convexnn_version"] = __version__
    blob = np.frombuffer(json.dumps(header).encode("utf-8"), dtype=np.uint8)
    target = _target(path)
    with open(target, "wb") as fh:
        np.savez_compressed(fh, **{_META: blob}, **arrays)
    return target


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a file written by :func:`save` (type, format version, metadata)."""
    with np.load(_target(path) if not Path(path).exists() else Path(path), allow_pickle=False) as z:
        if _META not in z.files:
            raise InputError(f"{path} is not a convexnn file (no {_META!r} entry); save files with convexnn.io.save.")
        return json.loads(bytes(z[_META]).decode("utf-8"))


def load(path: str | Path) -> Any:
    """Load an object written by :func:`save` (never unpickles anything).

    Raises
    ------
    InputError
        If the file is not a convexnn file, or was written by a newer format version.
    """
    p = Path(path)
    if not p.exists():
        p = _target(p)
    if not p.exists():
        raise InputError(f"no such file: {path}")
    try:
        z = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not a readable .npz file: {exc}") from exc
    with z:
        if _META not in z.files:
            raise InputError(f"{path} is not a convexnn file (no {_META!r} entry); save files with convexnn.io.save.")
        header = json.loads(bytes(z[_META]).decode("utf-8"))
        if int(header.get("format_version", 0)) > FORMAT_VERSION:
            raise InputError(f"{path} was written with format version {header['format_version']}; this convexnn "
                             f"reads up to {FORMAT_VERSION}. Upgrade convexnn.")
        kind, meta = header["type"], header["meta"]
        if kind == "TwoLayerReLU":
            return TwoLayerReLU(z["W1"], z["w2"], bias=meta["bias"], penalty=_penalty_of(meta))
        if kind == "GatedReLU":
            return GatedReLU(z["gates"], z["W1"], z["w2"], bias=meta["bias"], penalty=_penalty_of(meta))
        if kind == "Patterns":
            return _decode_patterns(z, meta)
        if kind == "ConvexSolution":
            return _decode_solution(z, meta)
        if kind in ("TwoLayerCertificate", "Certificate"):
            return _decode_certificate(z, meta)
        raise InputError(f"{path} holds an object of unknown type {kind!r}.")
