"""One module per measurement; each function measures one run and returns plain numbers."""
