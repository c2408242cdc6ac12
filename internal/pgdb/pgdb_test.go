package pgdb

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestValidate(t *testing.T) {
	assert.NoError(t, Validate("postgres://u:secret@db.example:5432/m", false, "x"))
	assert.NoError(t, Validate("host=db.example user=u dbname=m", false, "x"))
	assert.EqualError(t, Validate("postgres://u@db/m", true, "window states"), "storage and postgres are exclusive: window states live in one place")
	assert.EqualError(t, Validate("", false, "x"), "postgres::dsn is required")
	err := Validate("postgres://u:secret@db.example:notaport/m", false, "x")
	assert.ErrorIs(t, err, ErrDSN)
	assert.NotContains(t, err.Error(), "secret", "a DSN's password is never repeated")
}
