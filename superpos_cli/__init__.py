"""superpos: benchmark quantum-inspired training claims honestly.

The optimizer is importable on its own::

    from superpos_cli import SuperpositionalAdam
"""

__version__ = "0.1.0"
__all__ = ["SuperpositionalAdam", "__version__"]


def __getattr__(name: str):
    # Lazy, so `superpos --help` and submodules do not pay for the optimizer's imports.
    if name == "SuperpositionalAdam":
        from superpos_cli.optim.optimizer import SuperpositionalAdam

        return SuperpositionalAdam
    raise AttributeError(f"module 'superpos_cli' has no attribute {name!r}")
