"""Data-subject rights (policy section 9): commands, per-sink effects, the request tracker, exports, retention."""
