"""The packaged model: weights + JSON + the code it needs, loaded without calling anything outside its families."""
