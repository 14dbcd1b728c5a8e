"""The convex model zoo: further architectures whose training problems are convex programs.

* :mod:`convexnn.zoo.polynomial` -- polynomial activations as SDPs (Bartan & Pilanci 2021), and the
  quantized-network relaxation (Bartan & Pilanci, ICML 2021);
* :mod:`convexnn.zoo.batchnorm` -- ReLU networks with batch normalization (Ergen et al., ICLR 2022);
* :mod:`convexnn.zoo.conv` -- two-layer ReLU CNNs with global pooling (Ergen & Pilanci, ICLR 2021);
* :mod:`convexnn.zoo.wgan` -- Wasserstein GANs with a quadratic discriminator and a two-layer ReLU
  generator (Sahiner et al., ICLR 2022).
"""

from convexnn.zoo.batchnorm import BatchNormReLU, BNCertificate, BNReLUFormulation, bn_from_network, c_bn_relu, certify_bn
from convexnn.zoo.conv import (
    ConvCertificate,
    Conv2LayerReLU,
    ConvGeometry,
    ConvReLUFormulation,
    c_conv_relu,
    certify_conv,
    conv_from_network,
    conv_patterns,
    patch_matrices,
)
from convexnn.zoo.polynomial import (
    PolynomialNetwork,
    PolySDP,
    QuadraticNuclear,
    QuantizedNetwork,
    QuantizedResult,
    QuantizedSDP,
    lifted_neurons,
    poly_sdp,
    polynomial_from_network,
    quadratic_nuclear,
    quantized_exact,
    quantized_sdp,
    round_quantized,
)

__all__ = [
    "BatchNormReLU",
    "BNCertificate",
    "BNReLUFormulation",
    "certify_bn",
    "bn_from_network",
    "c_bn_relu",
    "ConvCertificate",
    "Conv2LayerReLU",
    "certify_conv",
    "ConvGeometry",
    "ConvReLUFormulation",
    "c_conv_relu",
    "conv_from_network",
    "conv_patterns",
    "patch_matrices",
    "PolynomialNetwork",
    "PolySDP",
    "QuadraticNuclear",
    "lifted_neurons",
    "poly_sdp",
    "polynomial_from_network",
    "quadratic_nuclear",
    "QuantizedNetwork",
    "QuantizedResult",
    "QuantizedSDP",
    "quantized_exact",
    "quantized_sdp",
    "round_quantized",
]

from convexnn.zoo.wgan import (  # noqa: E402
    ConvexWGAN,
    QuadraticDiscriminator,
    WGANMomentSDP,
    WGANOutput,
    best_discriminator,
    convex_wgan,
    discriminator_value,
    fit_generator,
    wgan_generator_output,
    wgan_moment_sdp,
)

__all__ += [
    "ConvexWGAN",
    "QuadraticDiscriminator",
    "WGANMomentSDP",
    "WGANOutput",
    "best_discriminator",
    "convex_wgan",
    "discriminator_value",
    "fit_generator",
    "wgan_generator_output",
    "wgan_moment_sdp",
]
