"""Stage libraries behind the scripts: the unimodal sweep and the VLM answer parser."""
