"""The lazy graph: primitive ops, immutable nodes, and index arithmetic for views."""
