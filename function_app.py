"""The Azure Functions app (Python v2 programming model): registers the blueprints, nothing else.

Each blueprint lives in ``shared/triggers/`` and only translates its bindings to a call of the service
layer (``shared/services/``). Heavy libraries are imported inside the function bodies' call paths.
"""

import azure.functions as func

from shared.settings import configure_process
from shared.triggers.dumps import bp as dumps
from shared.triggers.sales import bp as sales
from shared.triggers.timers import bp as timers

configure_process()  # before a function body first imports pyarrow (see its docstring)

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(dumps)
app.register_functions(sales)
app.register_functions(timers)
