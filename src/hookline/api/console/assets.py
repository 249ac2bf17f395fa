"""The console's static files, served from the package at ``/static/console/`` (``api.docs``
mounts ``hookline.api``'s ``static`` folder at ``/static``): one stylesheet and htmx.

``htmx.min.js`` is ``dist/htmx.min.js`` of the npm package ``htmx.org`` 2.0.11 (the newest 2.0.x;
4.x is a new major), with that package's ``LICENSE`` (0BSD) beside it as ``htmx.LICENSE``.
Nothing is fetched at run time; a unit test holds the file to ``HTMX_SHA256``. To update:
``npm pack htmx.org@2.0.<n>``, copy both files, change the two constants.
"""

from __future__ import annotations

from typing import Final

STATIC_FOLDER: Final = "console"
"""The folder under ``hookline/api/static`` (and under the ``/static`` URL)."""
STYLESHEET: Final = "console.css"
HTMX_FILE: Final = "htmx.min.js"
HTMX_LICENSE_FILE: Final = "htmx.LICENSE"
HTMX_VERSION: Final = "2.0.11"
HTMX_SHA256: Final = "d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717"
