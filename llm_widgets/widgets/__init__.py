"""anywidget views: thin classes that call llm_widgets.compute and ship arrays as binary buffers."""
