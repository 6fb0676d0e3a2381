"""The steps of geometry extraction, one module each; ``scene_builder.mesh`` runs them in order.

``types`` (Region, DepthView, Geometry), ``views`` (the cameras and their depth renders),
``trust`` (which depth to fuse, the ground prior), ``tsdf`` (fusion), ``cleanup`` (crop, floaters,
holes, decimation, convex parts), ``baking`` (vertex colours) and ``points`` (the pipeline from
sparse points and captured images, without a field). The drivable map is built by
``scene_builder.drivable.drivable_from_mesh``.
"""
