#pragma once
// A core header that uses ops: the layering check must reject it.
#include "ops/b.h"
