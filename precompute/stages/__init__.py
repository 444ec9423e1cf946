"""Pipeline stages, one module each; the registry (registry.py) finds them all.

To add a stage, write ONE new module here that declares and registers it::

    from precompute.stages.registry import Stage, StageContext, Target, register

    def run(ctx: StageContext, target: Target) -> str:
        inputs = ctx.input_keys(STAGE, target)
        def compute(w):            # w: precompute.artifacts.StageWriter
            w.save_array("thing", ...)
        return ctx.runner.run_stage("mystage", target.embedder, {"seed": ctx.config.seed}, inputs, compute)

    STAGE = register(Stage(name="mystage", version="1", after="relate", inputs=("relate",),
                           outputs={"thing": "array"}, run=run, scope="embedder"))

The pipeline's order, versions, ``--force`` and run loop, and the dashboard's
``PhenomixData.artifact(stage, name)``, all read the registry; nothing else needs an edit. A stage
module is a thin runner (config + inputs -> keyed store writes); the science it calls lives in pure
modules (precompute/align.py, aggregate.py, relate.py, projection.py, evaluation/, ...).
"""
