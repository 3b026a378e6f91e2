// placeholder until written (see moe.h)
#include "cuda/moe.h"
