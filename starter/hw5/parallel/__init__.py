"""Given code shared by hw5's tasks: launching ranks (`launch`) and a small GPT (`model`)."""
