"""flash-linear-attention's ops without its package __init__: fla's
__init__ (with flash-linear-attention installed) imports a model zoo that
pins a transformers version, which the NVlabs code (transformers 4.57) and
a GPU machine's image may not have. Only `fla.ops` is needed."""

import importlib.util
import sys
import types


def install() -> None:
    """Registers a bare `fla` package over the installed folder."""
    if "fla" in sys.modules:
        return
    spec = importlib.util.find_spec("fla")
    if spec is None:
        raise SystemExit("fla is not installed (pip install --no-deps fla-core==0.6.0 einops)")
    bare = types.ModuleType("fla")
    bare.__path__ = list(spec.submodule_search_locations)
    bare.__version__ = "0.6.0"
    sys.modules["fla"] = bare
