"""The Gymnasium simulator: PyBullet physics over a scene bundle, cameras rendered from the radiance field or the baked mesh."""
