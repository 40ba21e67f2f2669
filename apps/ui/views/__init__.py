"""The page views, one module per page family. Views are thin: they read through selectors and act through the
services and the engine, never around them."""
