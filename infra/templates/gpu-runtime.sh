# The GPU image ships the NVIDIA driver and container toolkit; nvidia becomes containerd's default.
nvidia-ctk runtime configure --runtime=containerd --set-as-default
