package tokenpipe

// Internals that the tests in package tokenpipe_test check directly.
var ParseEndValue = parseEndValue

const MaxEndValue = uint64(maxEndValue)
