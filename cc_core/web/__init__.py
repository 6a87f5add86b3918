"""The web side: for now the health page; the workstation comes with the web issue."""
