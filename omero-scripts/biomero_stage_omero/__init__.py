"""biomero-stage's drop-in OMERO scripts: BIOMERO's run scripts, handing off to the daemon.

``declare`` builds the parameter declarations, ``daemon`` talks to biomero-stage,
``omero_shell`` is the only part that imports OMERO.
"""

__version__ = "0.1.0"
