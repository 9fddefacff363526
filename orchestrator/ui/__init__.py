"""`podctl ui`: the live view of a pod (Textual). model.py holds what the view knows, feed.py keeps
it in step with the broker's event stream, text.py words it, app.py and forms.py draw it."""
