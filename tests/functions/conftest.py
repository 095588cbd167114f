from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def functions():
    """The registered functions by name. get_functions() may run once per process (see FACTS.md)."""
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}
