import click
@click.group() 
def demo(): pass
