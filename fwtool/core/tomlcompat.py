"""tomllib on 3.11+, tomli before."""
try:  # pragma: no cover - trivial
    import tomllib  # type: ignore[import-not-found]
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

__all__ = ["tomllib"]
