"""sam2roto: the host-agnostic plugin (command line; later the service and the roto panel)."""
