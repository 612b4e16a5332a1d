# Loss curves of the two shipped models: gnuplot Scripts/training/loss.gp (make loss-plot).
# Reads Models/{llama,mamba}-loss.csv (step,tokens,train_loss,valid_loss,lr,seconds,tokens_per_s).
set datafile separator ','
set key top right
set grid
set xlabel 'training tokens (millions)'
set ylabel 'cross-entropy (nats per token)'
set title 'orochi-ja-llama and orochi-ja-mamba: training and validation loss'
set yrange [*:9.5]
set terminal pngcairo size 900,560 font ',11'
set output 'Models/loss.png'
plot 'Models/llama-loss.csv' every ::1 using ($2/1e6):3 with lines lw 2 lc rgb '#1f77b4' title 'Llama train', \
     "< awk -F, 'NR > 1 && $4 != \"\"' Models/llama-loss.csv" using ($2/1e6):4 with linespoints pt 7 lw 2 lc rgb '#1f77b4' dt 2 title 'Llama validation', \
     'Models/mamba-loss.csv' every ::1 using ($2/1e6):3 with lines lw 2 lc rgb '#d62728' title 'Mamba train', \
     "< awk -F, 'NR > 1 && $4 != \"\"' Models/mamba-loss.csv" using ($2/1e6):4 with linespoints pt 7 lw 2 lc rgb '#d62728' dt 2 title 'Mamba validation'
set terminal svg size 900,560 font ',11'
set output 'Models/loss.svg'
replot
