#pragma once
#include "train/data/d.h"
