"""Build steps: RUN, COPY/ADD, and the config-only instructions."""
