"""API surfaces: what clients speak. One module per surface decodes its requests and encodes its answers."""
