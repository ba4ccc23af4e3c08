// Tests for this target land with its code.
