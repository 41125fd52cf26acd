// Package architecture holds the test that keeps tokenproxy's packages depending one way, down the layers
// of design.md's package table; it has no code of its own.
package architecture
