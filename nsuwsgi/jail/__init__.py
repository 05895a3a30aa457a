"""The isolation layer: a JailSpec becomes a plan of ops, applied in the spawned child."""
