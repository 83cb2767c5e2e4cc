"""wdtk: build training data for web-search agents (crawl -> synth -> filters -> training).

The Python API: `wdtk.run(recipe)` runs a whole recipe, `wdtk.plan(recipe)` is its dry run (the plan and the
estimate), `wdtk.stages.<stage>(run_dir, **options)` runs one stage (see wdtk.training.api). They load on use:
`import wdtk` stays as light as `wdtk --version`.
"""

__version__ = "0.1.0"


def run(recipe, **options) -> dict:
    """Run a recipe (a YAML file or a dict) and return {stage: summary}; see wdtk.training.api.run."""
    from .training import api

    return api.run(recipe, **options)


def plan(recipe, **options) -> dict:
    """A recipe's dry run, printing nothing: its plan and its estimate; see wdtk.training.api.plan."""
    from .training import api

    return api.plan(recipe, **options)


def __getattr__(name: str):
    if name == "stages":  # each stage as a function on a run directory and options
        from .training import api

        return api
    raise AttributeError(f"module 'wdtk' has no attribute {name!r}")
