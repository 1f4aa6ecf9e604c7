#pragma once
// Every differentiable op, for layers and models.
#include "core/error.h"
#include "ops/batch_norm.h"
#include "ops/channel.h"
#include "ops/conv.h"
#include "ops/elementwise.h"
#include "ops/loss.h"
#include "ops/matmul.h"
#include "ops/metrics.h"
#include "ops/pool.h"
#include "ops/reduce.h"
#include "ops/resize.h"
#include "ops/shape.h"
