namespace theta {}
