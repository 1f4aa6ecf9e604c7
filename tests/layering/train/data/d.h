#pragma once
// The data layer may not use its synthetic sub-layer.
#include "train/data/synthetic/c.h"
