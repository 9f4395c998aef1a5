"""OpenAI-compatible serving over the budget-forcing engine (needs the `serve` extra).

    from s1kit.serve import ServeConfig, run_serve
    run_serve(ServeConfig(model="./my-model"))          # http://127.0.0.1:8000/v1
    python -m s1kit.serve.app --model ./my-model        # the same as `s1kit serve`

FastAPI and uvicorn are imported only when an app is built, so importing the config is cheap.
"""

__all__ = ["ServeConfig", "create_app", "run_serve"]


def __getattr__(name: str):
    if name in __all__:
        from s1kit.serve import app

        return getattr(app, name)
    raise AttributeError(name)
