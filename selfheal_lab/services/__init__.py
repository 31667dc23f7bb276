"""The lab's services: each module starts, stops and talks to one of them."""
