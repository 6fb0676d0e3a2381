"""Scene building: from a captured video to a scene bundle (frames, poses, radiance field, meshes, maps)."""
