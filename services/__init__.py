"""The three incident-lessons services. They never import each other; they share ``schemas`` only."""
