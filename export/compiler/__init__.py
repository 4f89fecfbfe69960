"""The keyed compiler: from a prepared plain graph to the keyed models (``export.keyify.keyify`` runs it).

One compile, in order, each step one module, all sharing one ``compilation.Compilation``:

    inputs    check the options; the measurement normalised as the plain model's user did it
    fresh     the ``fresh`` policy: constrain layouts, assign them, emit every node through its pass
    boundary  the ``boundary`` policy: the measurement in natural order, then the plain nodes as they are
    outputs   each plain output under its name, ``plain`` or a ``dense`` map in a named layout
    split     with ``split_after``: the features leave scrambled, for a feature and a task model
    assemble  prune and order each model's nodes, write the manifests

and what the ``fresh`` passes (``export/passes``) work with: ``context`` (the rewrite's state),
``values`` (how a plain tensor is held in the keyed graph), ``classes`` (the union-find of tensors
that share a layout) and ``builder`` (unique names, constants, opset-aware node helpers).
"""
