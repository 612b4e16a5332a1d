// The CBLAS interface of the system's OpenBLAS (Debian: libopenblas-dev).
#include <cblas.h>
// Not declared by every cblas.h; OpenBLAS exports them.
void openblas_set_num_threads(int num_threads);
int openblas_get_num_threads(void);
