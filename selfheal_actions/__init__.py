"""selfheal: Mistral actions that heal an OpenStack cloud by themselves.

Every action here is a mistral-lib action registered under the
``mistral.actions`` entry point group as ``selfheal.<verb_object>``. They are
loaded by Mistral's executor; nothing here imports the lab.
"""
