"""The dashboard at /ui: spend over time, free pools, budgets, routing decisions,
fallbacks and errors, for the admin key only.

    views.py    the /ui endpoints (sign-in, dashboard, static files)
    session.py  sessions (cookie + ledger store) and the same-origin checks
    data.py     what the page shows (spend log, ledger view, health book)
    page.py     the HTML (every value escaped)
    static/     uPlot (vendored from npm), the page's script and styles

See docs/dashboard.md.
"""

from router.server.ui.views import handle

__all__ = ["handle"]
