"""Configuration adapters: home folder and INI files, AWS region and endpoint. No auth."""
