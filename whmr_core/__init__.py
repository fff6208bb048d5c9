"""whmr_core: the ROS-free part of whmr (geometry, body model, network, trainer, runtime)."""

from whmr_core._version import __version__

__all__ = ["__version__"]
