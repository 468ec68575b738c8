"""Reading and writing llkl-db files: metadata, text sets, vectors, Hub snapshots."""
