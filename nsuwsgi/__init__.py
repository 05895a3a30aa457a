"""nsuwsgi: uWSGI's isolation, daemon and Emperor features, rebuilt as a small supervisor.

The package is laid out so that imports point one way (see DESIGN.md): the option table and
config loaders know nothing of processes; the spawn primitive, the state machine and the loop
know nothing of options; the master ties them together.
"""

__version__ = "0.1.0"
