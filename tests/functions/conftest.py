from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def functions():
    """The registered functions by name. get_functions() may run once per process (see FACTS.md), so this
    shares the local runner's cached call."""
    from shared.local.runner import app_functions

    return {f.get_function_name(): f for f in app_functions()}
