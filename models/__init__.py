"""Network definitions, inference backends behind one interface, and export."""
