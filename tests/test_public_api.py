import subprocess
import sys

import router
import providers


def test_router_all_is_pinned():
    assert sorted(router.__all__) == sorted(
        ["Router", "ChatRequest", "ChatResponse", "Message", "Usage", "RoutedResponse", "RouteInfo", "errors"]
    )


def test_providers_all_is_pinned():
    assert providers.__all__ == ["Provider"]


def test_import_does_no_io_and_stays_light():
    code = (
        "import sys, socket\n"
        "def boom(*a, **k): raise SystemExit('network at import')\n"
        "socket.socket.connect = boom\n"
        "import router, providers\n"
        "heavy = [m for m in ('genai_prices','numpy','matplotlib','starlette','uvicorn','redis','tiktoken') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_cli_help_runs():
    from router.cli import main

    assert main(["--help"]) == 0
