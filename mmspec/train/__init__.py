"""``mmspec-train``: regenerate answers with the target, train draft models online, evaluate them."""
