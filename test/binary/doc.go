// Package binary holds the tests of the built tokenproxy program: each runs it as an operator or a pod
// would (flags, environment, signals, files, its log and admin endpoints); it has no code of its own.
package binary
