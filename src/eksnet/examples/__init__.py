"""Ready-made cluster specs shipped with eksnet (the talk demo)."""
